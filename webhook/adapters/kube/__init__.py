"""The Kubernetes API adapter, split by job: the client (`client`), certificate bootstrap
(`bootstrap`), the read-only report (`check`) and the TLS handshake it makes (`probe`)."""
