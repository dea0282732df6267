"""mkdocs hooks (``hooks:`` in mkdocs.yml)."""
