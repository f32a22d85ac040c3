// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import "SynodOracle.sol";

/// @title AskSynod: an example consumer of SynodOracle, meant to be copied.
/// @notice Anyone asks through it (`ask`, paying at least the oracle's `minFee`); the network's answer
/// comes back in `onLLMResult`, which only the oracle may call, once per question.
///
/// What it shows:
/// - Answers are emitted, not stored. A log costs 8 gas a byte, storage about 700, and the callback runs
///   on a fixed budget (the oracle's `callbackGasLimit`, 200,000 by default): a contract that stored
///   whole answers would lose long ones. It stores what a contract acts on: the status, the answer's
///   keccak256 and the verdict digest, which anyone can check against the request's transcript
///   (`synod-verify <relay>/v1/verify/<chainId>:<oracle>:<requestNo> --expect-digest <digest>`).
///   At the oracle's default 200,000 gas the callback takes answers up to about 16 KiB (measured: 16 KiB
///   runs, 20 KiB runs out of gas); ask for fewer `maxTokens`, or deploy the oracle with more callback
///   gas, if longer answers must arrive here.
/// - A refunded question's fee goes back to whoever asked (`claimRefund`): the oracle credits refunds
///   to the requester, which is this contract, so it pays its askers itself (it withdraws them from the
///   oracle and takes ether only from it: a consumer without both would leave its refunds in the oracle
///   for good). `claimRefund` asks the oracle too (`requests(n)`), so a refund whose callback never ran
///   still pays the asker, and refunds a question still unsettled past its deadline at the oracle itself
///   (anyone may, then), so an asker whose question no bridge settled gets the fee back in one call.
/// - If a callback could not run (it reverted or ran out of gas: the oracle's event then says
///   `callbackOk = false`), the question stays `Pending` here; an answer is then only in the oracle's
///   `LLMFulfilled` event, and a refund is still paid by `claimRefund`.
contract AskSynod is ISynodConsumer {
    enum Status {
        None,
        Pending,
        Answered,
        Refunded,
        Repaid
    }

    struct Question {
        address asker;
        uint96 fee;
        Status status;
        bytes32 answerHash;
        bytes32 verdictDigest;
    }

    /// Quorum asked for: three independent nodes must answer.
    uint16 public constant QUORUM = 3;
    /// The reason `claimRefund` gives the oracle when it refunds a question left unsettled past its deadline.
    string public constant DEADLINE_PASSED = "DEADLINE_PASSED";

    SynodOracle public immutable oracle;
    mapping(uint256 requestNo => Question) public questions;

    event Asked(uint256 indexed requestNo, address indexed asker, string prompt);
    event Answered(
        uint256 indexed requestNo, address indexed asker, string answer, bytes32 verdictDigest, bytes32 transcriptRoot
    );
    event Refunded(uint256 indexed requestNo, address indexed asker, string reason);

    error NotOracle();
    error NotPending(uint256 requestNo);
    error NotRefundable(uint256 requestNo);
    error NotAsker();
    error TransferFailed();

    constructor(SynodOracle oracle_) {
        oracle = oracle_;
    }

    /// @notice Ask the network (greedy decoding); send at least the oracle's `minFee`.
    function ask(string calldata prompt, string[] calldata models, uint32 maxTokens)
        external
        payable
        returns (uint256 requestNo)
    {
        requestNo = oracle.callLLM{value: msg.value}(prompt, models, maxTokens, 0, QUORUM);
        questions[requestNo] = Question({
            asker: msg.sender,
            fee: uint96(msg.value),
            status: Status.Pending,
            answerHash: bytes32(0),
            verdictDigest: bytes32(0)
        });
        emit Asked(requestNo, msg.sender, prompt);
    }

    function onLLMResult(
        uint256 requestNo,
        bool fulfilled,
        string calldata answer,
        bytes32 verdictDigest,
        bytes32 transcriptRoot
    ) external {
        if (msg.sender != address(oracle)) revert NotOracle();
        Question storage q = questions[requestNo];
        if (q.status != Status.Pending) revert NotPending(requestNo);
        if (fulfilled) {
            q.status = Status.Answered;
            q.answerHash = keccak256(bytes(answer));
            q.verdictDigest = verdictDigest;
            emit Answered(requestNo, q.asker, answer, verdictDigest, transcriptRoot);
        } else {
            q.status = Status.Refunded;
            emit Refunded(requestNo, q.asker, answer);
        }
    }

    /// @notice Pay a refunded question's fee back to its asker (only the asker may ask for it, once).
    function claimRefund(uint256 requestNo) external {
        Question storage q = questions[requestNo];
        // Never rely on the callback alone: one that could not run (callbackOk false) left the question
        // Pending here, while the oracle refunded it and credited the fee to this contract.
        if (q.status == Status.Pending) {
            (,, uint64 deadline, SynodOracle.Status settled, bytes32 questionHash) = oracle.requests(requestNo);
            // Unsettled past its deadline (no bridge answered it): anyone may refund it at the oracle,
            // naming its question; do it here, so the asker needs no call of their own to the oracle.
            if (settled == SynodOracle.Status.Pending && block.timestamp > deadline) {
                oracle.refund(requestNo, questionHash, DEADLINE_PASSED);
                settled = SynodOracle.Status.Refunded;
            }
            if (settled == SynodOracle.Status.Refunded) q.status = Status.Refunded;
        }
        if (q.status != Status.Refunded) revert NotRefundable(requestNo);
        if (msg.sender != q.asker) revert NotAsker();
        q.status = Status.Repaid;
        // The oracle keeps refunds until withdrawn; take what it holds for this contract (several
        // questions' fees, perhaps), then pay this one.
        if (oracle.balances(address(this)) > 0) oracle.withdraw();
        (bool sent,) = payable(q.asker).call{value: q.fee}("");
        if (!sent) revert TransferFailed();
    }

    /// Only the oracle pays this contract (withdrawn refunds).
    receive() external payable {
        if (msg.sender != address(oracle)) revert NotOracle();
    }
}
