"""The pure core: dicts in, dicts out, no I/O. Names, the typed domain, reading a pod, selection,
the script edits, a container's rewrite, `mutate`, and the AdmissionReview envelope."""
