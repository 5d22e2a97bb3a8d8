"""Fake helpdesk servers: real aiohttp servers on 127.0.0.1 speaking each documented API."""
