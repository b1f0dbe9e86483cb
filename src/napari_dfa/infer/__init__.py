"""Tiled inference over big images: geometry, tissue detection, output stores, engine."""
