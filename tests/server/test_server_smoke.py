def test_version_document(api):
    body = api.call("GET", "/", expect=200)
    assert body["versions"][0]["id"] == "v2.0"
    assert body["versions"][0]["status"] == "CURRENT"
    assert body["versions"][0]["links"][0]["href"].endswith("/v2.0/")
