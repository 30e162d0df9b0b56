# What tests/integration/test_image.py builds and runs ops/image/Dockerfile with: podman
# (runc as its runtime, since Debian's podman may come with neither crun nor runc), and
# mmdebstrap for a local Debian base image where no image registry is reachable. The
# base image and the wheelhouse are made (once, cached) by ops/image/build.py itself.
if command -v docker >/dev/null && docker info >/dev/null 2>&1; then
  return 0  # a working Docker engine builds the image as it is
fi
apt_install podman runc mmdebstrap
