"""Model families, one file each, named after the papers' ideas."""
