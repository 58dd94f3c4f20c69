#!/usr/bin/env python3
"""Writes keepalived.conf for 12-thousand-real-servers-000.yaml:
200 virtual servers 203.0.113.1-200:80, each over 10 real servers
10.3.J.V:80 (J = 1..10 the real-server node, V the VIP's last byte),
every one checked by HTTP_GET. Run: python3 gen.py > keepalived.conf"""

print("""! Seed 000 (seeds/000_b9ebab0dbc6c4d1c.txt), 故障总结 06 "关于keepalived
! Real_server 过多导致进程崩溃": "目前使用VIP的数量有200左右. 每个VIP下面
! realserver约在5-10个左右 ... 1100个左右,keepalived进程就会挂掉" - the seed
! prints the log, not the configuration; this is its shape (200 VIPs x 10
! real servers, HTTP_GET as in its "Cannot send get request") written by
! gen.py beside this file (python3 gen.py > keepalived.conf). The seed's
! public VIPs are documentation addresses 203.0.113.1-200; the real servers
! are private (10.3.J.V: node rsJ, VIP .V). Timers are the virtual
! servers' (inherited by every checker): delay_loop 5, connect_timeout 2,
! retry 1, delay_before_retry 1. lb_kind DR (the seed names none; the
! scenario's header says why).
global_defs {
    router_id lvslab-12
}""")
for v in range(1, 201):
    print(f"""virtual_server 203.0.113.{v} 80 {{
    delay_loop 5
    lb_algo rr
    lb_kind DR
    protocol TCP
    connect_timeout 2
    retry 1
    delay_before_retry 1""")
    for j in range(1, 11):
        print(f"""    real_server 10.3.{j}.{v} 80 {{
        HTTP_GET {{
            url {{
                path /
                status_code 200
            }}
        }}
    }}""")
    print("}")
