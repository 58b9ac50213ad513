"""Small helpers kept from the original oy3opy library."""
