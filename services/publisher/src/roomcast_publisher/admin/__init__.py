"""The operator console's API (/v1/admin/*) and page (/console/), behind admin keys."""
