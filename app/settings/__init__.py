"""The sections of the service's settings; ``app.config.Settings`` composes them."""
