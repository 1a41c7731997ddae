"""Cases, results, the environment they carry, and the store that keeps them.

`case` (what is measured, and its outcome), `environment` (what it ran on), `record` (a result
as JSON, as workers send it and the store writes it), `schema` (the validated layout every reader
goes through), `store` (run directories and their files), `format` (figures as text). Nothing is
imported here, so that a worker process that writes records never imports the readers' pydantic.
"""
