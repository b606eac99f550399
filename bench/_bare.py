"""The baseline for the addsms benchmark: a bare aiohttp handler that parses the same form and
answers a fixed JSON body, without validation or storage. Run as its own process."""

from __future__ import annotations

import sys

from aiohttp import web


async def addsms(request: web.Request) -> web.Response:
    form = await request.post()
    return web.json_response(
        {"error": 0, "sms_id": len(form), "message": "Sms has been saved successfully"}
    )


def main() -> None:
    app = web.Application()
    app.router.add_post("/getdata/addsms", addsms)
    web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), access_log=None, print=None)


if __name__ == "__main__":
    main()
