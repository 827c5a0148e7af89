"""Event source mapping states, as AWS spells them (no I/O)."""

from __future__ import annotations

CREATING = "Creating"
ENABLING = "Enabling"
ENABLED = "Enabled"
DISABLING = "Disabling"
DISABLED = "Disabled"
UPDATING = "Updating"
DELETING = "Deleting"
#: states a mapping is in only until the server settles it (changes are refused meanwhile)
TRANSITIONAL = (CREATING, ENABLING, DISABLING, UPDATING, DELETING)
