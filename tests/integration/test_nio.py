"""matrix-nio, an independent client, against a real ranvier."""

from __future__ import annotations

import nio
import pytest


@pytest.mark.parametrize("encryption", [False, pytest.param(True, marks=pytest.mark.interop)],
                         ids=["plain", "encrypted"])
async def test_nio_register_login_whoami_devices_logout(homeserver, tmp_path, encryption):
    config = nio.AsyncClientConfig(encryption_enabled=encryption, store_sync_tokens=False)
    client = nio.AsyncClient(homeserver.base_url, "@nio:localhost", store_path=str(tmp_path), config=config)
    try:
        registered = await client.register("nio", "correct horse", device_name="nio device")
        assert isinstance(registered, nio.RegisterResponse), registered
        assert registered.user_id == "@nio:localhost"
        if encryption:
            uploaded = await client.keys_upload()
            assert isinstance(uploaded, nio.KeysUploadResponse) and uploaded.signed_curve25519_count > 0, uploaded
            encryption_state = {"type": "m.room.encryption", "state_key": "", "content": {"algorithm": "m.megolm.v1.aes-sha2"}}
            assert isinstance(await client.room_create(initial_state=[encryption_state]), nio.RoomCreateResponse)
            assert isinstance(await client.sync(timeout=0), nio.SyncResponse)
            if client.should_query_keys:
                await client.keys_query()

        second = nio.AsyncClient(homeserver.base_url, "@nio:localhost", store_path=str(tmp_path), config=config)
        try:
            login = await second.login("correct horse", device_name="second device")
            assert isinstance(login, nio.LoginResponse), login
            if encryption:  # the first device learns of the second through the device list of its room
                assert isinstance(await second.keys_upload(), nio.KeysUploadResponse)
                synced = await client.sync(timeout=0)
                assert "@nio:localhost" in synced.device_list.changed
                assert isinstance(await client.keys_query(), nio.KeysQueryResponse)
                assert client.device_store["@nio:localhost"][second.device_id].display_name == "second device"
            who = await second.whoami()
            assert isinstance(who, nio.WhoamiResponse) and who.user_id == "@nio:localhost"
            assert who.device_id == login.device_id

            devices = await second.devices()
            assert isinstance(devices, nio.DevicesResponse), devices
            names = {device.display_name for device in devices.devices}
            assert names == {"nio device", "second device"}

            old_token = second.access_token
            logout = await second.logout()
            assert isinstance(logout, nio.LogoutResponse), logout
            second.access_token = old_token  # nio forgets it; the server must refuse it
            after = await second.whoami()
            assert isinstance(after, nio.WhoamiError) and after.status_code == "M_UNKNOWN_TOKEN"
        finally:
            await second.close()

        bad = await client.login("wrong password")
        assert isinstance(bad, nio.LoginError) and bad.status_code == "M_FORBIDDEN"
    finally:
        await client.close()


async def test_nio_deletes_a_device_with_password_auth(homeserver, tmp_path):
    client = nio.AsyncClient(homeserver.base_url, "@deleter:localhost", store_path=str(tmp_path))
    other = nio.AsyncClient(homeserver.base_url, "@deleter:localhost", store_path=str(tmp_path))
    try:
        await client.register("deleter", "correct horse", device_name="main")
        login = await other.login("correct horse", device_name="old")
        first = await client.delete_devices([login.device_id])
        assert isinstance(first, nio.DeleteDevicesAuthResponse), first
        auth = {"type": "m.login.password", "session": first.session, "password": "correct horse",
                "identifier": {"type": "m.id.user", "user": "deleter"}}
        done = await client.delete_devices([login.device_id], auth=auth)
        assert isinstance(done, nio.DeleteDevicesResponse), done
        devices = await client.devices()
        assert [d.id for d in devices.devices] == [client.device_id]
    finally:
        await client.close()
        await other.close()


async def test_nio_uploads_an_image_and_gets_its_thumbnail_from_a_render_worker(homeserver, tmp_path):
    import io

    from PIL import Image

    from tests.integration.test_media_render_workers import workers

    buffer = io.BytesIO()
    Image.new("RGB", (1200, 900), (20, 120, 220)).save(buffer, "JPEG")
    photo = buffer.getvalue()
    client = nio.AsyncClient(homeserver.base_url, "@pictures:localhost", store_path=str(tmp_path))
    try:
        assert isinstance(await client.register("pictures", "correct horse"), nio.RegisterResponse)
        uploaded, _ = await client.upload(io.BytesIO(photo), content_type="image/jpeg", filename="photo.jpg",
                                          filesize=len(photo))
        assert isinstance(uploaded, nio.UploadResponse), uploaded
        server_name, media_id = uploaded.content_uri.removeprefix("mxc://").split("/")
        assert not workers()
        thumbnail = await client.thumbnail(server_name, media_id, 320, 240, nio.ResizingMethod.scale)
        assert isinstance(thumbnail, nio.ThumbnailResponse), thumbnail
        assert thumbnail.content_type == "image/jpeg"
        assert Image.open(io.BytesIO(thumbnail.body)).size == (320, 240)
        assert len(workers()) == 1, "rendered by a worker process of the server"
    finally:
        await client.close()
