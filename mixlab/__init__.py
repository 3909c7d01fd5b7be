"""mixlab package."""
