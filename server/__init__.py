"""simhive gateway server: the SMSGateway24-compatible API, native API and agent protocol."""
