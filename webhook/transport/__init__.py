"""Transport: the ASGI apps, the listeners that serve them, logs and metrics."""
