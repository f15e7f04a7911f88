"""Use cases that read a cluster: what is installed and whether it serves (`installation`, the
`check` command), which pods slipped through unrepaired (`audit`), and what an installed
policy covers (`installed_policies`). Over the adapters (the Kubernetes client, certificates)
and the offline front ends (the isolation scripts are parsed under); under the command line.
"""
