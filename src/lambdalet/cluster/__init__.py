"""Cluster mode: stateless API replicas and sandbox-owning workers sharing one PostgreSQL
(``docs/cluster.md``).  Nothing here runs in the single-process default."""
