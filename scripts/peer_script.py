#!/usr/bin/env python3
"""The honest peer: what a data engineer writes instead of retl.

Reads the orders table, hashes each key, keeps the keys already sent in a
SQLite file, and (where the comment is) would send the new ones.
Usage: peer_script.py POSTGRES_URL TABLE STATE_DB   (prints how many were new)
"""
import hashlib
import sqlite3
import sys

import psycopg2

url, table, state = sys.argv[1:4]
db = sqlite3.connect(state)
db.execute("CREATE TABLE IF NOT EXISTS sent (key BLOB PRIMARY KEY)")
sent = {row[0] for row in db.execute("SELECT key FROM sent")}
pg = psycopg2.connect(url)
rows = pg.cursor(name="orders")  # server-side, streamed
rows.itersize = 10000
rows.execute(f"SELECT order_id, full_name, email, locale, sku FROM {table}")
new = []
for order_id, name, email, locale, sku in rows:
    key = hashlib.sha256(str(order_id).encode()).digest()[:16]
    if key not in sent:
        new.append(key)  # send_invitation(name, email, locale, sku) goes here
db.executemany("INSERT INTO sent VALUES (?)", ((k,) for k in new))
db.commit()
print(len(new))
