"""Bank transfers: statements imported (camt.053, CSV), entries matched to invoices."""
