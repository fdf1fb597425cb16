#!/bin/sh
# Seed fuzz_http with Firecracker-style API exchanges (see the input format in the .c).
d=$1
# header: default max_payload, pieces of 8, 1, 64, all-at-once, no request start
h() { printf '\000\007\000\077\377\000'; }
{ h; printf 'GET / HTTP/1.1\r\nHost: localhost\r\nAccept: */*\r\n\r\n'; } >"$d/get"
{ h; printf 'PUT /boot-source HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 27\r\n\r\n{"kernel_image_path": "/k"}'; } >"$d/put"
{ h; printf 'PATCH /vm HTTP/1.1\r\nContent-Length: 20\r\n\r\n{"state": "Paused"}\nGET /vm?x=1#f HTTP/1.1\r\n\r\nHEAD / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nDELETE /x HTTP/1.1\r\nConnection: close\r\n\r\n'; } >"$d/pipelined"
{ h; printf 'PUT /mmds HTTP/1.1\r\nExpect: 100-continue\r\nContent-Length: 5\r\n\r\n'; } >"$d/expect"
{ printf '\002\000\000\000\000\000'; printf 'PUT /mmds HTTP/1.1\r\nContent-Length: 17\r\n\r\n{"a": "bcdefghi"}'; } >"$d/limit"
{ h; printf 'POST /x HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n'; } >"$d/chunked"
{ h; printf 'GET http://localhost/actions HTTP/1.1\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n'; } >"$d/absolute-upgrade"
