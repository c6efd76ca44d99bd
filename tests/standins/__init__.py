"""Local stand-ins for services the tests cannot reach (an OpenID authority, Microsoft Graph): separate HTTPS
servers on 127.0.0.1 that answer with the documented responses and check every request against the documented
shape. The code under test talks to them over real sockets and TLS; nothing of it is patched."""
