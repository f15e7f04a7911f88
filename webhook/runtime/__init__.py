"""The server's runtime: what runs beside admission in a serving replica. The admission pass
(`admit`), the sandboxes that parse untrusted scripts (`sandbox`, `parsepool`), warm start
(`scripts`, `warmup`), the Event queue (`events`) and the certificate loop (`certificates`).

It sits over the core, the adapters and the offline front ends' isolation, and under the
transport: nothing here speaks HTTP or knows the metrics library.
"""
