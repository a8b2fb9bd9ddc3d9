#!/usr/bin/env bash
# Checks a running S3 server (e2e/s3.sh up) with a real S3 client (python3 + boto3): object put/get,
# a 2-part multipart upload with a content round trip, listing, deletion, and the errors a wrong secret
# key and a missing bucket give. Exits non-zero with a message on the first failure.
#
#   e2e/s3.sh up && e2e/s3-check.sh
#
# Connection settings come from the environment (S3_ENDPOINT, S3_ACCESS_KEY, S3_SECRET_KEY, S3_BUCKET,
# S3_REGION); those not set are taken from `e2e/s3.sh env`.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

if [[ -z ${S3_ENDPOINT:-} || -z ${S3_ACCESS_KEY:-} || -z ${S3_SECRET_KEY:-} || -z ${S3_BUCKET:-} || -z ${S3_REGION:-} ]]; then
  # Only fill in what the caller did not set.
  while IFS= read -r line; do
    var=${line#export }; var=${var%%=*}
    [[ -n ${!var:-} ]] || eval "$line"
  done < <("$HERE/s3.sh" env)
fi
export S3_ENDPOINT S3_ACCESS_KEY S3_SECRET_KEY S3_BUCKET S3_REGION

python3 -c 'import boto3' 2>/dev/null || { echo "s3-check: FAIL: python3 cannot import boto3" >&2; exit 1; }

exec python3 - <<'PY'
import hashlib, os, sys, time, uuid

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

ENDPOINT = os.environ["S3_ENDPOINT"]
BUCKET = os.environ["S3_BUCKET"]
REGION = os.environ["S3_REGION"]
AK, SK = os.environ["S3_ACCESS_KEY"], os.environ["S3_SECRET_KEY"]

passed = 0


def ok(msg):
    global passed
    passed += 1
    print(f"ok: {msg}", flush=True)


def die(msg):
    print(f"s3-check: FAIL: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


def client(secret=SK):
    cfg = Config(
        s3={"addressing_style": "path"},
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
        retries={"max_attempts": 1, "mode": "standard"},
        connect_timeout=5,
        read_timeout=30,
    )
    return boto3.client("s3", endpoint_url=ENDPOINT, region_name=REGION,
                        aws_access_key_id=AK, aws_secret_access_key=secret, config=cfg)


def error_code(fn):
    """Runs fn, which must fail with a ClientError; returns (code, http status)."""
    try:
        fn()
    except ClientError as e:
        return e.response.get("Error", {}).get("Code"), e.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    die(f"{fn.__doc__ or 'call'}: expected an error, it succeeded")


def step(what, fn):
    try:
        return fn()
    except ClientError as e:
        die(f"{what}: {e}")
    except Exception as e:  # connection refused, timeouts, ...
        die(f"{what}: {type(e).__name__}: {e}")


s3 = client()
print(f"s3-check: endpoint {ENDPOINT}, bucket {BUCKET}, region {REGION}", flush=True)
prefix = f"s3-check/{time.strftime('%Y%m%dT%H%M%S')}-{uuid.uuid4().hex[:8]}/"

# 0. the bucket is there
step(f"HeadBucket {BUCKET}", lambda: s3.head_bucket(Bucket=BUCKET))
ok(f"bucket {BUCKET} exists")

# 1. put / get
small_key = prefix + "small.bin"
small = os.urandom(1000) + b"cnredis"
r = step("PutObject", lambda: s3.put_object(Bucket=BUCKET, Key=small_key, Body=small))
if r["ETag"].strip('"') != hashlib.md5(small).hexdigest():
    die(f"PutObject ETag {r['ETag']} is not the MD5 of the body")
got = step("GetObject", lambda: s3.get_object(Bucket=BUCKET, Key=small_key)["Body"].read())
if got != small:
    die(f"GetObject returned {len(got)} bytes that differ from the {len(small)} put")
ok(f"put/get {len(small)} bytes, ETag = MD5")

# 2. multipart upload: 5 MiB + a few bytes, in 2 parts
mp_key = prefix + "multipart.bin"
parts_data = [os.urandom(5 * 1024 * 1024), os.urandom(12345)]
mpu = step("CreateMultipartUpload", lambda: s3.create_multipart_upload(Bucket=BUCKET, Key=mp_key))
upload_id = mpu["UploadId"]
try:
    parts = []
    for n, data in enumerate(parts_data, 1):
        pr = step(f"UploadPart {n}", lambda: s3.upload_part(Bucket=BUCKET, Key=mp_key, UploadId=upload_id,
                                                            PartNumber=n, Body=data))
        parts.append({"PartNumber": n, "ETag": pr["ETag"]})
    listed_parts = step("ListParts", lambda: s3.list_parts(Bucket=BUCKET, Key=mp_key, UploadId=upload_id))
    if [p["Size"] for p in listed_parts.get("Parts", [])] != [len(d) for d in parts_data]:
        die(f"ListParts sizes {[p['Size'] for p in listed_parts.get('Parts', [])]}")
    cr = step("CompleteMultipartUpload", lambda: s3.complete_multipart_upload(
        Bucket=BUCKET, Key=mp_key, UploadId=upload_id, MultipartUpload={"Parts": parts}))
except SystemExit:
    try:
        s3.abort_multipart_upload(Bucket=BUCKET, Key=mp_key, UploadId=upload_id)
    except Exception:
        pass
    raise
whole = b"".join(parts_data)
want_etag = hashlib.md5(b"".join(hashlib.md5(d).digest() for d in parts_data)).hexdigest() + "-2"
if cr["ETag"].strip('"') != want_etag:
    die(f"multipart ETag {cr['ETag']}, expected {want_etag}")
head = step("HeadObject multipart", lambda: s3.head_object(Bucket=BUCKET, Key=mp_key))
if head["ContentLength"] != len(whole):
    die(f"HeadObject ContentLength {head['ContentLength']} != {len(whole)}")
got = step("GetObject multipart", lambda: s3.get_object(Bucket=BUCKET, Key=mp_key)["Body"].read())
if hashlib.sha256(got).digest() != hashlib.sha256(whole).digest():
    die(f"multipart object content differs ({len(got)} bytes read, {len(whole)} uploaded)")
rng = step("GetObject range", lambda: s3.get_object(Bucket=BUCKET, Key=mp_key,
                                                   Range=f"bytes={5 * 1024 * 1024 - 3}-{5 * 1024 * 1024 + 2}")["Body"].read())
if rng != whole[5 * 1024 * 1024 - 3:5 * 1024 * 1024 + 3]:
    die("ranged GetObject across the part boundary returned wrong bytes")
ok(f"multipart upload of 2 parts ({len(parts_data[0])} + {len(parts_data[1])} bytes), ETag {want_etag}, content and range round trip")

# 3. list
lst = step("ListObjectsV2", lambda: s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix))
got_keys = {o["Key"]: o["Size"] for o in lst.get("Contents", [])}
want_keys = {small_key: len(small), mp_key: len(whole)}
if got_keys != want_keys:
    die(f"ListObjectsV2 prefix {prefix}: {got_keys}, expected {want_keys}")
ok(f"list under {prefix}: {len(got_keys)} objects with the right sizes")

# 4. delete
step("DeleteObject", lambda: s3.delete_object(Bucket=BUCKET, Key=small_key))
dr = step("DeleteObjects", lambda: s3.delete_objects(Bucket=BUCKET, Delete={"Objects": [{"Key": mp_key}]}))
if dr.get("Errors"):
    die(f"DeleteObjects errors: {dr['Errors']}")
lst = step("ListObjectsV2 after delete", lambda: s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix))
if lst.get("KeyCount", 0) != 0:
    die(f"objects left after delete: {[o['Key'] for o in lst.get('Contents', [])]}")
code, status = error_code(lambda: s3.head_object(Bucket=BUCKET, Key=small_key))
if status != 404:
    die(f"HeadObject of a deleted object: HTTP {status} {code}, expected 404")
code, status = error_code(lambda: s3.get_object(Bucket=BUCKET, Key=small_key))
if code != "NoSuchKey":
    die(f"GetObject of a deleted object: {code} (HTTP {status}), expected NoSuchKey")
ok("delete: objects gone (HeadObject 404, GetObject NoSuchKey)")

# 5. wrong secret key
bad = client(secret=SK + "-wrong")
code, status = error_code(lambda: bad.list_objects_v2(Bucket=BUCKET))
if code not in ("SignatureDoesNotMatch", "AccessDenied") or status != 403:
    die(f"wrong secret key: {code} (HTTP {status}), expected SignatureDoesNotMatch or AccessDenied, 403")
code2, status2 = error_code(lambda: bad.put_object(Bucket=BUCKET, Key=prefix + "x", Body=b"x"))
if code2 not in ("SignatureDoesNotMatch", "AccessDenied") or status2 != 403:
    die(f"wrong secret key on PutObject: {code2} (HTTP {status2})")
ok(f"wrong secret key: ListObjectsV2 -> {code} ({status}), PutObject -> {code2} ({status2})")

# 5b. unknown access key: must be refused; the code differs between servers (AWS: InvalidAccessKeyId 403;
# versitygw v1.8.0: XAdminUserNotFound 404), so only the refusal is checked and the code reported.
unknown = boto3.client("s3", endpoint_url=ENDPOINT, region_name=REGION,
                       aws_access_key_id=AK + "-unknown", aws_secret_access_key=SK, config=s3.meta.config)
code, status = error_code(lambda: unknown.list_objects_v2(Bucket=BUCKET))
if status not in (403, 404) or not code:
    die(f"unknown access key: {code} (HTTP {status}), expected a 403/404 refusal")
ok(f"unknown access key refused: ListObjectsV2 -> {code} ({status})")

# 6. missing bucket
missing = "cnredis-missing-" + uuid.uuid4().hex[:12]
code, status = error_code(lambda: s3.list_objects_v2(Bucket=missing))
if code != "NoSuchBucket":
    die(f"ListObjectsV2 on missing bucket: {code} (HTTP {status}), expected NoSuchBucket")
code2, status2 = error_code(lambda: s3.put_object(Bucket=missing, Key="x", Body=b"x"))
if code2 != "NoSuchBucket":
    die(f"PutObject into missing bucket: {code2} (HTTP {status2}), expected NoSuchBucket")
ok(f"missing bucket: ListObjectsV2 -> {code} ({status}), PutObject -> {code2} ({status2})")

print(f"{passed} passed, 0 failed", flush=True)
PY
