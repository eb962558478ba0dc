"""The official Kubernetes client, built from a flavor's config."""

from __future__ import annotations

from typing import Any

from kitaru_core.errors import ConfigError

from .configs import KubernetesJobConfig


def api_client(config: KubernetesJobConfig) -> Any:
    """An `ApiClient` for `config`: its kubeconfig file, else in-cluster credentials,
    else the default kubeconfig (~/.kube/config or $KUBECONFIG)."""
    from kubernetes import client
    from kubernetes import config as kube_config

    if config.kubeconfig is not None:
        return _from_kubeconfig(config.kubeconfig, config.context)
    try:
        configuration = client.Configuration()
        kube_config.load_incluster_config(client_configuration=configuration)
        return client.ApiClient(configuration)
    except kube_config.ConfigException:
        return _from_kubeconfig(None, config.context)


def _from_kubeconfig(path: str | None, context: str | None) -> Any:
    from kubernetes import config as kube_config

    try:
        return kube_config.new_client_from_config(config_file=path, context=context)
    except (kube_config.ConfigException, OSError) as exc:
        where = path or "the default kubeconfig"
        raise ConfigError(
            f"cannot load Kubernetes credentials from {where} ({exc}); set `kubeconfig` (and "
            "`context`) in the stack's kubernetes config, or run inside the cluster"
        ) from exc
