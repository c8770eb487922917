"""The manager bot in WeCom (issue 9, item 6): GET/POST /wechat/work/callback, spoken to as WeCom
does — every message encrypted and signed with wechatpy's crypto, every answer decrypted the
same way — and the binding of staff users to WeCom members (API and CLI)."""
import json
import time
import uuid
import xml.etree.ElementTree as ET

import pytest
from wechatpy.enterprise import WeChatCrypto, parse_message

from app.models import Alert, AuditEntry, NodeInstance, StaffUser, Task, Urge
from app.services import alerts
from app.services.actors import Actor
from app.timeutil import china_date
from tests import factories

TOKEN = "bot-callback-token"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 characters, as the WeCom console gives
CORP_ID = "ww-test-corp"
URL = "/wechat/work/callback"
ENGINE = Actor.system("延期预警")


@pytest.fixture
def app_settings():
    return {"WECOM_TOKEN": TOKEN, "WECOM_ENCODING_AES_KEY": AES_KEY, "WECOM_CORP_ID": CORP_ID}


class WeCom:
    """Posts a member's text to the callback the way WeCom does, and reads the encrypted reply."""

    def __init__(self, client, corp_id=CORP_ID):
        self.client = client
        self.crypto = WeChatCrypto(TOKEN, AES_KEY, corp_id)
        self.ids = iter(range(7_000_000_000, 8_000_000_000))

    def deliver(self, user, text, msg_id=None, token=TOKEN):
        """POST one text message; → the response."""
        plain = (f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><FromUserName><![CDATA[{user}]]></FromUserName>"
                 f"<CreateTime>{int(time.time())}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
                 f"<Content><![CDATA[{text}]]></Content><MsgId>{msg_id or next(self.ids)}</MsgId>"
                 f"<AgentID>1000002</AgentID></xml>")
        nonce, timestamp = uuid.uuid4().hex[:10], str(int(time.time()))
        sealed = ET.fromstring(WeChatCrypto(token, AES_KEY, CORP_ID).encrypt_message(plain, nonce, timestamp))
        body = (f"<xml><ToUserName><![CDATA[{CORP_ID}]]></ToUserName><AgentID><![CDATA[1000002]]></AgentID>"
                f"<Encrypt><![CDATA[{sealed.findtext('Encrypt')}]]></Encrypt></xml>")
        query = {"msg_signature": sealed.findtext("MsgSignature"), "timestamp": timestamp, "nonce": nonce}
        return self.client.post(URL, query_string=query, data=body.encode(), content_type="text/xml")

    def say(self, user, text, msg_id=None):
        """The reply's text, decrypted and checked as WeCom checks it."""
        answer = self.deliver(user, text, msg_id)
        assert answer.status_code == 200, answer.data
        sealed = ET.fromstring(answer.data)
        plain = self.crypto.decrypt_message(answer.data, sealed.findtext("MsgSignature"), sealed.findtext("TimeStamp"),
                                            sealed.findtext("Nonce"))
        reply = parse_message(plain)
        assert (reply.type, reply.source, reply.target) == ("text", CORP_ID, user)
        assert len(reply.content.encode()) <= 2048
        return reply.content


@pytest.fixture
def wecom(client):
    return WeCom(client)


@pytest.fixture
def boss(dbconn):
    """A manager bound to the WeCom member zhang.jl."""
    user = factories.staff("zhang", "long-enough-pw", "manager")
    StaffUser.update(wecom_userid="zhang.jl").where(StaffUser.id == user.id).execute()
    return user


def _late_order():
    """An order whose first task is red-late (a delay alert) and whose second has a missing report."""
    sup1, sup2 = factories.supplier("苏州精工冲压厂"), factories.supplier("昆山焊接")
    order = factories.order(factories.customer(), [sup1, sup2], days_before=40, days_after=-6)
    t1, t2 = order.tasks.order_by(Task.id)
    red = alerts.raise_alert(ENGINE, t1, "delay", "red", deviation_pct=40.0, days_late=8, message="冲压落后 40%")
    orange = alerts.raise_alert(ENGINE, t2, "delay", "orange", deviation_pct=12.0, days_late=3, message="焊接落后 12%")
    missing = alerts.raise_alert(ENGINE, t2, "missing_report", "yellow", message="今天未报工")
    return order, (t1, t2), (red, orange, missing)


def test_url_verification_answers_the_decrypted_echostr_and_refuses_a_bad_signature(client):
    crypto = WeChatCrypto(TOKEN, AES_KEY, CORP_ID)
    nonce, timestamp = "n0nce", str(int(time.time()))
    sealed = ET.fromstring(crypto.encrypt_message("1616140317555161061", nonce, timestamp))
    query = {"msg_signature": sealed.findtext("MsgSignature"), "timestamp": timestamp, "nonce": nonce,
             "echostr": sealed.findtext("Encrypt")}

    answer = client.get(URL, query_string=query)
    assert answer.status_code == 200 and answer.data == b"1616140317555161061"  # no quotes, no newline

    forged = client.get(URL, query_string={**query, "msg_signature": "0" * 40})
    assert forged.status_code == 403 and forged.json["error"]["code"] == "bad_signature"
    assert client.get(URL, query_string={"echostr": query["echostr"]}).status_code == 400
    other_corp = WeChatCrypto(TOKEN, AES_KEY, "ww-another-corp")
    sealed = ET.fromstring(other_corp.encrypt_message("42", nonce, timestamp))
    assert client.get(URL, query_string={**query, "msg_signature": sealed.findtext("MsgSignature"),
                                         "echostr": sealed.findtext("Encrypt")}).status_code == 403


def test_a_message_signed_with_another_token_or_unreadable_is_refused_and_runs_nothing(wecom, boss, client):
    task = factories.order(factories.customer(), [factories.supplier()]).tasks.get()
    forged = wecom.deliver("zhang.jl", f"催单 {task.task_no} 快点", token="not-our-token")
    assert forged.status_code == 403 and forged.json["error"]["code"] == "bad_signature"
    junk = client.post(URL, query_string={"msg_signature": "x", "timestamp": "1", "nonce": "n"}, data=b"not xml")
    assert junk.status_code == 400
    assert Urge.select().count() == 0


def test_without_the_callback_settings_the_route_is_not_there(make_app):
    client = make_app().test_client()
    answer = client.get(URL, query_string={"msg_signature": "x", "timestamp": "1", "nonce": "n", "echostr": "e"})
    assert answer.status_code == 404 and answer.json["error"]["code"] == "wecom_callback_off"


def test_progress_shows_tasks_nodes_and_late_tasks(wecom, boss):
    order, (t1, t2), _ = _late_order()
    Task.update(qty_done=250, last_report_date=china_date()).where(Task.id == t1.id).execute()

    text = wecom.say("zhang.jl", f"进度 {order.order_no}")
    assert text.startswith(f"订单 {order.order_no}｜钣金机箱 ×1000件\n状态：生产中")
    assert f"· {t1.task_no} 冲压（苏州精工冲压厂" in text and "250/1000" in text
    assert "节点：\n· " in text and "首件" in text
    assert "落后任务：" in text and f"🔴红 {t2.task_no} 晚" in text.split("落后任务：")[1]  # unreported since the start
    assert wecom.say("zhang.jl", "进度 SO-NOPE") == "没有找到订单 SO-NOPE"
    assert "请写上订单号" in wecom.say("zhang.jl", "进度")


def test_late_lists_open_delay_alerts_worst_first_and_alerts_lists_every_open_one(wecom, boss):
    order, (t1, t2), (red, orange, missing) = _late_order()

    other = factories.order(factories.customer(), [factories.supplier()]).tasks.get()
    worse = alerts.raise_alert(ENGINE, other, "delay", "red", deviation_pct=10.0, days_late=12)

    late = wecom.say("zhang.jl", "逾期").splitlines()
    assert late[0].startswith("逾期任务 3 个")
    assert late[1].startswith(f"· 🔴红 预警#{worse.id} {other.task_no}") and "晚 12 个工作日" in late[1]
    assert late[2].startswith(f"· 🔴红 预警#{red.id} {t1.task_no}") and "晚 8 个工作日，落后 40%" in late[2]
    assert late[3].startswith(f"· 🟠橙 预警#{orange.id} {t2.task_no}") and len(late) == 4
    alerts.resolve_by_system(ENGINE, worse.id, "已追上")

    listed = wecom.say("zhang.jl", "预警").splitlines()
    assert listed[0].startswith("未解除的预警 3 条")
    assert [f"预警#{a.id} " in line for a, line in zip((red, orange, missing), listed[1:], strict=True)] == [True] * 3
    assert "漏报提醒（未确认）" in listed[3] and "今天未报工" in listed[3]


def test_acknowledge_records_who_and_says_so_once(wecom, boss):
    _, (t1, _), (red, _, _) = _late_order()

    assert wecom.say("zhang.jl", f"确认 {red.id}") == f"已确认预警#{red.id}（延期预警，{t1.task_no}），由zhang（测试）跟进。"
    alert = Alert.get_by_id(red.id)
    assert (alert.status, alert.acknowledged_by_id, alert.ack_note) == ("acknowledged", boss.id, "企业微信确认")
    assert "（已确认）" in wecom.say("zhang.jl", "预警")
    assert wecom.say("zhang.jl", "确认 999999") == "预警不存在"
    assert "请写上预警号" in wecom.say("zhang.jl", "确认 abc")


def test_an_order_level_alert_is_listed_and_acknowledged_by_its_order(wecom, boss):
    """An overdue 订单确认 is about the order (no task, no supplier): the bot names the order."""
    order = factories.order(factories.customer(), [factories.supplier(), factories.supplier()])
    node = NodeInstance.get((NodeInstance.order == order.id) & (NodeInstance.code == "confirmed"))
    alert = alerts.raise_order_alert(ENGINE, order.id, "node_overdue", "orange", node=node, days_late=3,
                                     message="节点「订单确认」已逾期 3 个工作日未完成")

    listed = wecom.say("zhang.jl", "预警").splitlines()
    assert listed[1] == (f"· 🟠橙 预警#{alert.id} 节点逾期（未确认）订单 {order.order_no}："
                         "节点「订单确认」已逾期 3 个工作日未完成")
    assert wecom.say("zhang.jl", f"确认 {alert.id}") == (
        f"已确认预警#{alert.id}（节点逾期，订单 {order.order_no}），由zhang（测试）跟进。")
    assert Alert.get_by_id(alert.id).status == "acknowledged"


def test_urge_reaches_the_task_like_the_dashboard_does(wecom, boss):
    order = factories.order(factories.customer(), [factories.supplier("苏州精工冲压厂")])
    task = order.tasks.get()

    answer = wecom.say("zhang.jl", f"催单 {task.task_no} 请今天回复交期")
    assert answer.startswith("已向 苏州精工冲压厂") and "：请今天回复交期。" in answer
    urge = Urge.get()
    assert (urge.task_id, urge.by_staff_id, urge.via, urge.message) == (task.id, boss.id, "bot", "请今天回复交期")
    assert AuditEntry.get(AuditEntry.action == "task.urge").actor_id == str(boss.id)
    assert wecom.say("zhang.jl", "催单 SO-NOPE 快") == "没有找到任务 SO-NOPE"

    done = factories.order(factories.customer(), [factories.supplier()], state="completed").tasks.get()
    assert "只能催办生产中或暂停的任务" in wecom.say("zhang.jl", f"催单 {done.task_no} 快")
    assert Urge.select().count() == 1


def test_help_and_unknown_text_get_the_commands(wecom, boss):
    help_text = wecom.say("zhang.jl", "帮助")
    for command in ("进度 订单号", "逾期", "预警", "确认 预警号", "催单 任务号 内容"):
        assert command in help_text
    assert wecom.say("zhang.jl", "你好") == help_text
    assert wecom.say("zhang.jl", "  ") == help_text


def test_a_redelivered_message_runs_once_and_gets_the_same_answer(wecom, boss):
    task = factories.order(factories.customer(), [factories.supplier()]).tasks.get()

    first = wecom.say("zhang.jl", f"催单 {task.task_no} 第一次", msg_id=123456789)
    again = wecom.say("zhang.jl", f"催单 {task.task_no} 第一次", msg_id=123456789)  # WeCom's retry
    assert again == first
    assert Urge.select().count() == 1 and AuditEntry.select().where(AuditEntry.action == "task.urge").count() == 1
    wecom.say("zhang.jl", f"催单 {task.task_no} 第二次")  # a new message id is a new message
    assert Urge.select().count() == 2


def test_an_unbound_or_deactivated_member_is_refused_and_nothing_is_revealed(wecom, boss):
    order, (t1, _), (red, _, _) = _late_order()
    StaffUser.create(username="gone", display_name="离职", password_hash="x", role="manager", wecom_userid="gone.1",
                     active=False)

    for user in ("stranger", "gone.1"):
        answers = {wecom.say(user, text) for text in (f"进度 {order.order_no}", "逾期", "预警", f"确认 {red.id}",
                                                         f"催单 {t1.task_no} 快", "帮助", "进度 SO-NOPE")}
        assert len(answers) == 1  # the same sentence, whatever was asked and whether it exists
        (refusal,) = answers
        assert "尚未绑定" in refusal and order.order_no not in refusal and "预警#" not in refusal
    assert Alert.get_by_id(red.id).status == "open" and Urge.select().count() == 0


def test_long_answers_are_cut_to_whole_lines_within_2048_bytes(wecom, boss):
    supplier = factories.supplier("一个名字相当长的精密钣金冲压加工有限公司")
    for _ in range(70):
        task = factories.order(factories.customer(), [supplier]).tasks.get()
        alerts.raise_alert(ENGINE, task, "delay", "orange", deviation_pct=20.0, days_late=4, message="落后" * 20)

    text = wecom.say("zhang.jl", "预警")
    lines = text.splitlines()
    assert lines[0].startswith("未解除的预警 70 条")
    shown = len(lines) - 2
    assert 5 < shown < 40 and lines[-1] == f"……另有 {70 - shown} 条未列出，请到管理端查看。"
    assert len(text.encode()) <= 2048
    late = wecom.say("zhang.jl", "逾期")
    assert late.startswith("逾期任务 70 个") and late.endswith("个未列出，请到管理端查看。")


def test_binding_a_member_through_the_api_admins_and_managers_only(auth, client):
    qc = factories.staff("qc1", "long-enough-pw", "qc")
    admin = factories.staff("root", "long-enough-pw", "admin")
    manager = auth.login("manager")

    answer = manager.put(f"/api/v1/staff/{qc.id}/wecom", json={"wecom_userid": " li.qc "})
    assert answer.status_code == 200, answer.json
    assert answer.json == {"id": qc.id, "username": "qc1", "name": "qc1（测试）", "role": "qc", "active": True,
                           "wecom_userid": "li.qc"}
    assert json.loads(AuditEntry.get(AuditEntry.action == "staff.wecom").after) == {"wecom_userid": "li.qc"}
    taken = manager.put(f"/api/v1/staff/{admin.id}/wecom", json={"wecom_userid": "boss"})
    assert taken.status_code == 403  # a manager cannot make themselves an admin in the bot
    clash = manager.put(f"/api/v1/staff/{StaffUser.get(username='manager').id}/wecom", json={"wecom_userid": "li.qc"})
    assert clash.status_code == 409 and clash.json["error"]["code"] == "wecom_userid_taken"
    assert manager.put(f"/api/v1/staff/{qc.id}/wecom", json={"wecom_userid": "含中文"}).status_code == 422
    assert manager.put("/api/v1/staff/999999/wecom", json={"wecom_userid": "x"}).status_code == 404
    listed = manager.get("/api/v1/staff").json
    assert {s["username"]: s["wecom_userid"] for s in listed["items"]} == {"manager": None, "qc1": "li.qc", "root": None}
    assert manager.put(f"/api/v1/staff/{qc.id}/wecom", json={"wecom_userid": None}).json["wecom_userid"] is None

    qc_client = factories.staff_session(client, qc)
    assert qc_client.put(f"/api/v1/staff/{qc.id}/wecom", json={"wecom_userid": "me"}).status_code == 403


def test_binding_from_the_cli_lets_the_member_use_the_bot(app, wecom, dbconn):
    factories.staff("wang", "long-enough-pw", "manager")
    runner = app.test_cli_runner()
    assert "尚未绑定" in wecom.say("wang.wx", "帮助")

    bound = runner.invoke(args=["bind-wecom", "wang", "wang.wx"])
    assert bound.exit_code == 0 and "wang is bound to WeCom member wang.wx" in bound.output
    assert "可用指令" in wecom.say("wang.wx", "帮助")
    assert runner.invoke(args=["bind-wecom", "nobody", "x"]).exit_code == 1
    assert runner.invoke(args=["bind-wecom", "wang", "--unbind"]).exit_code == 0
    assert "尚未绑定" in wecom.say("wang.wx", "逾期")


def test_a_retried_message_after_a_refused_command_is_answered_the_same(wecom, boss):
    assert wecom.say("zhang.jl", "确认 424242", msg_id=555) == "预警不存在"
    assert wecom.say("zhang.jl", "确认 424242", msg_id=555) == "预警不存在"


def test_a_qc_member_cannot_urge(wecom, dbconn):
    StaffUser.create(username="qc9", display_name="质检", password_hash="x", role="qc", wecom_userid="qc.9")
    task = factories.order(factories.customer(), [factories.supplier()]).tasks.get()
    assert wecom.say("qc.9", f"催单 {task.task_no} 快") == "你的角色不能催单，请联系生产经理。"
    assert Urge.select().count() == 0
