"""The client side of the ``collect`` command: it talks to a Collect service over HTTP only.

``api`` is the HTTP client, ``where`` parses export filters, ``follow`` follows a job over
Server-Sent Events and handles Ctrl-C, ``output`` and ``display`` are what the terminal
shows (documents, messages, progress bars), ``render`` turns documents into tables and
sentences, and ``commands`` holds the verbs. Nothing here imports the server's code.
"""
