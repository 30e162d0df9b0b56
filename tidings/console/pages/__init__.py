"""The console's pages, one module each; each has ``register(app, console)``."""
