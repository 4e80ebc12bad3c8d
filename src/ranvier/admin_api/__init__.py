"""Synapse-compatible admin API under /_synapse/admin, and the web admin at /_ranvier/admin."""


def route_tables():
    """The admin API's route tables, one per area, and the web admin's pages."""
    from ranvier.admin_api import media, purge, registration_tokens, reports, rooms, server, users, web

    return [server.routes, users.routes, rooms.routes, media.routes, registration_tokens.routes, reports.routes,
            purge.routes, web.routes]
