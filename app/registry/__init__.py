"""Model store on disk, manifests, and the live registry of loaded versions."""
