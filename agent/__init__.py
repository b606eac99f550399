"""simhive host agent: drives GSM modems and syncs messages with the gateway server."""
