"""The web layer: the Flask app, the generic platform route, the task API and the routes not yet
on a connector; it turns HTTP into jobs and back and holds no business logic."""
