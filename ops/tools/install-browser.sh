# Headless Chromium for the console's browser tests (tests/browser/), from Debian's
# package: Playwright drives it through executable_path, so `playwright install` (which
# downloads a browser build of its own) is never run. Python Playwright itself comes
# with the test extras in pyproject.toml.
if ! command -v chromium >/dev/null 2>&1; then
  # Another apt run on a shared machine holds the dpkg lock now and then: try twice.
  apt_install chromium fonts-dejavu-core \
    || { sleep 20; apt_install chromium fonts-dejavu-core; } \
    || echo "tools: chromium could not be installed; the browser tests skip" >&2
fi
