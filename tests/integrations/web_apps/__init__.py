"""Apps served by real server processes in the integration tests (uvicorn, Granian, gunicorn).

They record what happened in the JSON-lines file named by ``AIRLOCK_WEB_RECORD``
(see :mod:`.record`), which the tests read from outside the server process.
"""
