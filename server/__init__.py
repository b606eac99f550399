"""simhive gateway server: the SMSGateway24-compatible API, the native API and the agent protocol."""
