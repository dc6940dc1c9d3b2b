"""Persistence: the one package that imports sqlalchemy and alembic (STYLE §1, §5).

Owns: ``Store`` (``store.py``), the schema (``tables.py``) and its Alembic revisions
(``migrations/``). Callers see ``radiusd.model`` values and ``radiusd.errors`` only.

Must not know: twisted, pyrad.
"""

from radiusd.store.store import Store

__all__ = ["Store"]
