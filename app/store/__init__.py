"""Published model versions on disk: manifests, the version store and active pointer, the response bank."""
