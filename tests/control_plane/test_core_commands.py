import json
from io import StringIO

from django.contrib.auth import get_user_model
from django.core.management import call_command
from rest_framework.authtoken.models import Token


def test_healthz_is_open_and_reports_the_database(client, db):
    # The old app's probes and clients got plain text "ok"; JSON for clients that ask for it.
    response = client.get("/healthz")
    assert response.status_code == 200 and response.content == b"ok"
    assert response["Content-Type"].startswith("text/plain")
    response = client.get("/healthz", HTTP_ACCEPT="application/json")
    assert response.status_code == 200 and response.json() == {"status": "ok"}


def test_demo_user_gets_a_fresh_password_each_time_and_a_working_token(client, db):
    def run() -> dict:
        out = StringIO()
        call_command("demo_user", stdout=out)
        return json.loads(out.getvalue())

    first, second = run(), run()
    assert first["password"] != second["password"] and first["token"] == second["token"]
    user = get_user_model().objects.get(username="demo")
    assert user.is_staff and user.check_password(second["password"]) and not user.check_password(first["password"])
    assert Token.objects.get(user=user).key == second["token"]
    assert client.get("/api/v1/datasets/", HTTP_AUTHORIZATION=f"Token {second['token']}").status_code == 200
