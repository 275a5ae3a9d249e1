CREATE TABLE alert_events (
	id SERIAL NOT NULL, 
	project_id INTEGER NOT NULL, 
	rule VARCHAR(100) NOT NULL, 
	event VARCHAR(16) NOT NULL, 
	at FLOAT NOT NULL, 
	value FLOAT NOT NULL, 
	threshold FLOAT NOT NULL, 
	message VARCHAR(2000) NOT NULL, 
	url VARCHAR(2000), 
	status VARCHAR(16) NOT NULL, 
	attempts INTEGER NOT NULL, 
	http_status INTEGER, 
	error VARCHAR(2000), 
	PRIMARY KEY (id)
);

CREATE INDEX ix_alert_events_project_at ON alert_events (project_id, at);

CREATE TABLE alert_rules (
	project_id INTEGER NOT NULL, 
	name VARCHAR(100) NOT NULL, 
	rule JSON, 
	firing BOOLEAN NOT NULL, 
	fired_at FLOAT, 
	last_value FLOAT, 
	evaluated_at FLOAT, 
	PRIMARY KEY (project_id, name)
);

CREATE TABLE analysis_queue (
	project_id INTEGER NOT NULL, 
	trace_id VARCHAR(128) NOT NULL, 
	updated_at FLOAT NOT NULL, 
	lease_until FLOAT, 
	leased_by VARCHAR(200), 
	PRIMARY KEY (project_id, trace_id)
);

CREATE TABLE api_keys (
	id SERIAL NOT NULL, 
	project_id INTEGER NOT NULL, 
	prefix VARCHAR(32) NOT NULL, 
	salt VARCHAR(64) NOT NULL, 
	key_hash VARCHAR(128) NOT NULL, 
	scopes VARCHAR(100) NOT NULL, 
	name VARCHAR(200), 
	created_at FLOAT NOT NULL, 
	revoked_at FLOAT, 
	PRIMARY KEY (id)
);

CREATE UNIQUE INDEX ix_api_keys_prefix ON api_keys (prefix);

CREATE INDEX ix_api_keys_project_id ON api_keys (project_id);

CREATE TABLE digest_deliveries (
	id SERIAL NOT NULL, 
	project_id INTEGER NOT NULL, 
	week VARCHAR(10) NOT NULL, 
	url VARCHAR(2000) NOT NULL, 
	trigger VARCHAR(16) NOT NULL, 
	status VARCHAR(16) NOT NULL, 
	attempts INTEGER NOT NULL, 
	http_status INTEGER, 
	error VARCHAR(2000), 
	created_at FLOAT NOT NULL, 
	delivered_at FLOAT, 
	PRIMARY KEY (id)
);

CREATE INDEX ix_digest_deliveries_project_week ON digest_deliveries (project_id, week);

CREATE TABLE edges (
	project_id INTEGER NOT NULL, 
	trace_id VARCHAR(128) NOT NULL, 
	src VARCHAR(128) NOT NULL, 
	dst VARCHAR(128) NOT NULL, 
	kind VARCHAR(32) NOT NULL, 
	inferred BOOLEAN NOT NULL, 
	PRIMARY KEY (project_id, trace_id, src, dst, kind)
);

CREATE TABLE findings (
	project_id INTEGER NOT NULL, 
	id VARCHAR(64) NOT NULL, 
	trace_id VARCHAR(128) NOT NULL, 
	workflow VARCHAR, 
	analyzer VARCHAR NOT NULL, 
	code VARCHAR NOT NULL, 
	node_ids JSON NOT NULL, 
	wasted_tokens BIGINT NOT NULL, 
	wasted_cost_usd FLOAT NOT NULL, 
	savings_usd FLOAT NOT NULL, 
	confidence FLOAT NOT NULL, 
	evidence JSON NOT NULL, 
	message VARCHAR NOT NULL, 
	trace_started_at FLOAT, 
	created_at FLOAT NOT NULL, 
	PRIMARY KEY (project_id, trace_id, id)
);

CREATE INDEX ix_findings_project_code ON findings (project_id, code);

CREATE INDEX ix_findings_project_cost ON findings (project_id, wasted_cost_usd);

CREATE INDEX ix_findings_project_trace ON findings (project_id, trace_id);

CREATE TABLE nodes (
	project_id INTEGER NOT NULL, 
	trace_id VARCHAR(128) NOT NULL, 
	node_id VARCHAR(128) NOT NULL, 
	parent_id VARCHAR, 
	kind VARCHAR NOT NULL, 
	source_kind VARCHAR, 
	name VARCHAR NOT NULL, 
	step VARCHAR, 
	start FLOAT, 
	"end" FLOAT, 
	status VARCHAR NOT NULL, 
	error_type VARCHAR, 
	provider VARCHAR, 
	model VARCHAR, 
	input_tokens BIGINT NOT NULL, 
	output_tokens BIGINT NOT NULL, 
	cache_read_tokens BIGINT NOT NULL, 
	cache_write_tokens BIGINT NOT NULL, 
	reasoning_tokens BIGINT NOT NULL, 
	finish_reason VARCHAR, 
	prompt VARCHAR, 
	prompt_hash VARCHAR, 
	output VARCHAR, 
	output_hash VARCHAR, 
	documents JSON, 
	top_k BIGINT, 
	query VARCHAR, 
	tool_name VARCHAR, 
	args JSON, 
	args_hash VARCHAR, 
	result VARCHAR, 
	result_hash VARCHAR, 
	tool_call_id VARCHAR, 
	decision VARCHAR, 
	review_target VARCHAR, 
	review_minutes FLOAT, 
	retry_of VARCHAR, 
	uses JSON, 
	outcome_status VARCHAR, 
	outcome_type VARCHAR, 
	outcome_value_usd FLOAT, 
	cost_usd FLOAT, 
	reported_cost_usd FLOAT, 
	price_source VARCHAR, 
	priced BOOLEAN NOT NULL, 
	cost_mismatch BOOLEAN, 
	attributes JSON, 
	PRIMARY KEY (project_id, trace_id, node_id)
);

CREATE INDEX ix_nodes_project_model ON nodes (project_id, provider, model);

CREATE INDEX ix_nodes_project_start ON nodes (project_id, start);

CREATE TABLE outcomes (
	project_id INTEGER NOT NULL, 
	task_id VARCHAR(256) NOT NULL, 
	status VARCHAR NOT NULL, 
	type VARCHAR, 
	value_usd FLOAT, 
	occurred_at FLOAT, 
	trace_id VARCHAR, 
	node_id VARCHAR, 
	workflow VARCHAR, 
	updated_at FLOAT NOT NULL, 
	PRIMARY KEY (project_id, task_id)
);

CREATE INDEX ix_outcomes_project_occurred ON outcomes (project_id, occurred_at);

CREATE TABLE price_overrides (
	id SERIAL NOT NULL, 
	project_id INTEGER NOT NULL, 
	provider VARCHAR, 
	model_pattern VARCHAR NOT NULL, 
	valid_from FLOAT, 
	valid_to FLOAT, 
	input_mtok FLOAT, 
	cached_input_mtok FLOAT, 
	cache_write_mtok FLOAT, 
	output_mtok FLOAT, 
	reasoning_mtok FLOAT, 
	per_call_usd FLOAT, 
	per_minute_usd FLOAT, 
	node_kind VARCHAR NOT NULL, 
	contracted BOOLEAN NOT NULL, 
	note VARCHAR, 
	PRIMARY KEY (id)
);

CREATE INDEX ix_price_overrides_project_id ON price_overrides (project_id);

CREATE TABLE projects (
	id SERIAL NOT NULL, 
	name VARCHAR(200) NOT NULL, 
	created_at FLOAT NOT NULL, 
	PRIMARY KEY (id)
);

CREATE UNIQUE INDEX ix_projects_name ON projects (name);

CREATE TABLE trace_summaries (
	project_id INTEGER NOT NULL, 
	trace_id VARCHAR(128) NOT NULL, 
	workflow VARCHAR, 
	team VARCHAR, 
	feature VARCHAR, 
	user_id VARCHAR, 
	task_id VARCHAR, 
	week VARCHAR(10), 
	started_at FLOAT, 
	cost_usd FLOAT NOT NULL, 
	tokens BIGINT NOT NULL, 
	model_calls INTEGER NOT NULL, 
	unpriced_count INTEGER NOT NULL, 
	productive_usd FLOAT NOT NULL, 
	waste_usd FLOAT NOT NULL, 
	waste_churn_usd FLOAT NOT NULL, 
	waste_bloat_usd FLOAT NOT NULL, 
	waste_routing_usd FLOAT NOT NULL, 
	waste_by_code JSON, 
	path_signature VARCHAR, 
	primary_model VARCHAR, 
	models JSON, 
	attempt_index INTEGER NOT NULL, 
	task_attempts INTEGER NOT NULL, 
	outcome_status VARCHAR, 
	outcome_here BOOLEAN NOT NULL, 
	outcome_value_usd FLOAT, 
	summarized_at FLOAT NOT NULL, 
	PRIMARY KEY (project_id, trace_id)
);

CREATE INDEX ix_summaries_paths ON trace_summaries (project_id, workflow, started_at, path_signature, cost_usd, waste_usd, outcome_status, outcome_here, trace_id);

CREATE INDEX ix_summaries_project_start ON trace_summaries (project_id, started_at);

CREATE INDEX ix_summaries_project_task ON trace_summaries (project_id, task_id);

CREATE INDEX ix_summaries_project_workflow_start ON trace_summaries (project_id, workflow, started_at);

CREATE TABLE traces (
	project_id INTEGER NOT NULL, 
	trace_id VARCHAR(128) NOT NULL, 
	workflow VARCHAR, 
	task_id VARCHAR, 
	team VARCHAR, 
	feature VARCHAR, 
	user_id VARCHAR, 
	session_id VARCHAR, 
	environment VARCHAR, 
	service_name VARCHAR, 
	tags JSON, 
	metadata JSON, 
	started_at FLOAT, 
	ended_at FLOAT, 
	node_count INTEGER NOT NULL, 
	llm_calls INTEGER NOT NULL, 
	input_tokens BIGINT NOT NULL, 
	output_tokens BIGINT NOT NULL, 
	cost_usd FLOAT NOT NULL, 
	reported_cost_usd FLOAT, 
	unpriced_count INTEGER NOT NULL, 
	unpriced_tokens BIGINT, 
	cost_mismatch_count INTEGER, 
	error_count INTEGER NOT NULL, 
	updated_at FLOAT NOT NULL, 
	analyzed_at FLOAT, 
	PRIMARY KEY (project_id, trace_id)
);

CREATE INDEX ix_traces_project_cost ON traces (project_id, cost_usd);

CREATE INDEX ix_traces_project_start ON traces (project_id, started_at);

CREATE INDEX ix_traces_project_task ON traces (project_id, task_id);

CREATE INDEX ix_traces_project_updated ON traces (project_id, updated_at);

CREATE INDEX ix_traces_project_workflow_start ON traces (project_id, workflow, started_at);

CREATE TABLE workflow_settings (
	project_id INTEGER NOT NULL, 
	name VARCHAR(200) NOT NULL, 
	baseline_cost_per_outcome_usd FLOAT, 
	outcome_value_usd FLOAT, 
	description VARCHAR, 
	PRIMARY KEY (project_id, name)
);
