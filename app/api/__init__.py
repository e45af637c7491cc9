"""The REST API: thin routers over the rag pipeline. ``main.create_app()`` builds it."""
