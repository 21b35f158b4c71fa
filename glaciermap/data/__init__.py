"""From scenes and outlines to masks, split regions and stored training tiles."""
