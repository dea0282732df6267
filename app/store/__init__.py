"""Published model versions on disk: manifests, versions, the active pointer, the response bank."""
