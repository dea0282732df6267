"""Python beside the manual: the mkdocs hooks named in mkdocs.yml (not pages of the site)."""
