"""The gateway's domain: accounts, devices, messages, numbers and dates, over a store interface.

Nothing here imports aiohttp; the HTTP layers in server/api/ parse requests, call into this package
and render its results.
"""
