"""Running a topology's services in production: Kubernetes manifests from topology.yaml.

``render_k8s`` turns a validated :class:`~tidings.topology.Topology` into the objects a
cluster needs (Deployments, Services, PodDisruptionBudgets, KEDA ScaledObjects, Strimzi
KafkaTopics and KafkaUsers); ``write_manifests`` writes them to a directory.
"""

from tidings.deploy.errors import DeployError
from tidings.deploy.output import write_manifests
from tidings.deploy.render import Manifest, Rendered, RenderOptions, render_k8s

__all__ = ["DeployError", "Manifest", "RenderOptions", "Rendered", "render_k8s", "write_manifests"]
