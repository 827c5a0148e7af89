"""Container image functions: image references, pulling, the unpacked-image cache.

- :mod:`reference`: parsing an ``ImageUri`` (pure).
- :mod:`spec`: what an image's config says about running it, with ``ImageConfig``'s
  overrides (pure).
- :mod:`cache`: pulling (``skopeo``) into one shared OCI layout, unpacking (``umoci``)
  into one read-only root per image digest, listing and pruning.
"""
