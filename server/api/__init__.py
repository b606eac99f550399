"""HTTP layers: parse requests, call server.core, render answers. No SQL here."""
