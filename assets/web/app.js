// The dashboard's pages.
