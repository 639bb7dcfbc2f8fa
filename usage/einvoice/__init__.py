"""Electronic invoices (DESIGN §6): an issued invoice as EN 16931 data, written as CII
(Factur-X, embedded in a PDF/A-3) and as UBL 2.1 (Peppol BIS Billing 3.0)."""
