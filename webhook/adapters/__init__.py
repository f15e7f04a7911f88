"""Adapters: settings, certificates and the Kubernetes client. They may use the core, never the
transport."""
