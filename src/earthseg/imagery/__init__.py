"""ImageLabeler exports as they come; fetching scenes from a WMS (GIBS)."""
