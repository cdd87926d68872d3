"""ray_cluster package."""
