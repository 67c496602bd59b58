"""What several routers' requests and answers share: bounds that keep bad input a 4xx, and the
lifecycle stages.

``DB_INT`` bounds every id (a larger number cannot be an id, and PostgreSQL would refuse to compare it
with an integer column); ``NO_NUL`` is the pattern of free text (PostgreSQL text cannot hold NUL).
"""

from __future__ import annotations

from typing import Literal

__all__ = ["DB_INT", "NO_NUL", "Role", "Stage"]

DB_INT = 2**31 - 1
NO_NUL = r"^[^\x00]*$"
Stage = Literal["prospect", "new", "active", "loyal", "at_risk", "churned", "won_back"]
Role = Literal["admin", "marketer", "viewer"]
