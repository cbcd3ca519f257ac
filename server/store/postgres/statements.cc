#include "server/store/postgres/statements.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace remex::store::internal {

std::string Timestamp(absl::string_view micros) {
  return absl::StrReplaceAll(
      "('epoch'::timestamptz + (M / 1000000) * interval '1 second'"
      " + (M % 1000000) * interval '1 microsecond')",
      {{"M", micros}});
}

// A task without args, input or labels has no inputs row, and one whose
// result is null with no output has no results row: reads join them with
// LEFT JOIN, and a task without payload costs two row versions, not four.
std::string InsertStatement() {
  return absl::StrCat(
      "WITH u AS (SELECT * FROM unnest($1::text[], $2::text[], $3::text[],"
      " $4::text[], $5::int2[], $6::int[], $7::int[], $8::int[], $9::bool[],"
      " $10::int8[], $11::int8[], $12::int8[], $13::int8[], $14::text[],"
      " $15::text[], $16::text[], $17::text[]) WITH ORDINALITY AS u(id,"
      " function, pool, owner, state, priority, attempt, max_attempts,"
      " cancel_requested, created_us, queue_timeout_us, run_timeout_us,"
      " ttl_us, args, input, labels, replica, n)),"
      " t AS (INSERT INTO remex_tasks (id, function, pool, owner, state,"
      " priority, attempt, max_attempts, cancel_requested, created_at,"
      " queue_timeout_us, run_timeout_us, ttl_us, replica)"
      " SELECT id, function, pool, owner, state, priority, attempt,"
      " max_attempts, cancel_requested, ",
      Timestamp("created_us"),
      ", queue_timeout_us, run_timeout_us, ttl_us, replica FROM u ORDER BY n"
      " ON CONFLICT (id) DO NOTHING RETURNING id, list_position),"
      " i AS (INSERT INTO remex_task_inputs (id, args, input, labels)"
      " SELECT u.id, u.args, decode(u.input, 'hex'), u.labels::jsonb"
      " FROM u JOIN t ON t.id = u.id"
      " WHERE u.args <> 'null' OR u.input <> '' OR u.labels <> '{}')"
      // UNION ALL runs both sides: the notifications go out with the rows.
      " SELECT id, list_position FROM t UNION ALL"
      " SELECT NULL, count(",
      Notify("m"), ") FROM unnest($18::text[]) m");
}

std::string UpdateStatement() {
  return absl::StrCat(
      "WITH u AS (SELECT * FROM unnest($1::text[], $2::int2[], $3::int[],"
      " $4::bool[], $5::int8[], $6::int8[], $7::int8[], $8::int[],"
      " $9::text[], $10::text[], $11::text[], $14::bool[]) AS u(id, state,"
      " attempt, cancel_requested, started_us, finished_us, expire_us,"
      " error_code, error_message, result, output, release)),"
      " t AS (UPDATE remex_tasks t SET state = u.state, attempt = u.attempt,"
      // A cancel asked through another replica stays asked.
      " cancel_requested = t.cancel_requested OR u.cancel_requested,"
      " started_at = ",
      Timestamp("u.started_us"), ", finished_at = ", Timestamp("u.finished_us"),
      ", expire_at = ", Timestamp("u.expire_us"),
      ", replica = CASE WHEN u.release THEN NULL ELSE $12 END,"
      " error_code = u.error_code, error_message = u.error_message"
      " FROM u WHERE t.id = u.id AND t.replica = $12 RETURNING t.id),"
      " r AS (INSERT INTO remex_task_results (id, result, output)"
      " SELECT u.id, u.result, decode(u.output, 'hex') FROM u"
      " JOIN t ON t.id = u.id"
      " WHERE u.result IS NOT NULL AND (u.result <> 'null' OR u.output <> '')"
      " ON CONFLICT (id) DO NOTHING)"
      " SELECT count(",
      Notify("m"), ") FROM unnest($13::text[]) m");
}

std::string Notify(absl::string_view payload) {
  return absl::StrCat("pg_notify(CASE WHEN left(", payload, ", 1) = 'e' THEN '",
                      kEndedChannel, "' ELSE '", kChannel, "' END, ", payload,
                      ")");
}

std::vector<std::string> Payloads(char kind,
                                  const std::vector<std::string>& words) {
  std::vector<std::string> payloads;
  for (const std::string& word : words) {
    if (payloads.empty() ||
        payloads.back().size() + 1 + word.size() > kMaxPayload) {
      payloads.emplace_back(1, kind);
    }
    absl::StrAppend(&payloads.back(), " ", word);
  }
  return payloads;
}

std::vector<std::string> EndedPayloads(const std::vector<std::string>& ids) {
  return Payloads('e', ids);
}

}  // namespace remex::store::internal
