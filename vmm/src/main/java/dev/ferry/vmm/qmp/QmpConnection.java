package dev.ferry.vmm.qmp;

import com.fasterxml.jackson.core.JsonProcessingException;
import com.fasterxml.jackson.core.exc.StreamConstraintsException;
import io.netty.buffer.ByteBuf;
import io.netty.buffer.ByteBufInputStream;
import io.netty.buffer.Unpooled;
import io.netty.channel.Channel;
import io.netty.channel.ChannelFuture;
import io.netty.channel.ChannelHandlerContext;
import io.netty.channel.SimpleChannelInboundHandler;
import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.io.IOException;
import java.io.InputStream;
import java.util.concurrent.RejectedExecutionException;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * One client's QMP session: sends the greeting, parses each frame from {@link QmpJsonFramer} into a
 * request, queues it on the {@link QmpDispatcher}, and carries the session's negotiation state.
 *
 * <p>Flow control as QEMU without out-of-band execution: at most {@value #MAX_QUEUED_REQUESTS}
 * requests of one client wait for the dispatcher; beyond that the connection stops reading until
 * one is answered, so a client cannot queue unbounded work.
 *
 * <p>Threads: the Netty callbacks and the queued-request count live on the channel's event loop; the
 * dispatcher thread calls {@link #send}, {@link #enterCommandMode} and {@link #requestDone};
 * {@link QmpServer#emit} calls {@link #sendEvent} from any thread. Every write is queued on the
 * event loop in call order, which is what keeps a client's replies and events in the order they
 * were produced.
 */
final class QmpConnection extends SimpleChannelInboundHandler<Object> {
    static final int MAX_QUEUED_REQUESTS = 8;
    private static final Logger LOG = LoggerFactory.getLogger(QmpConnection.class);
    private static final AtomicInteger NUMBERS = new AtomicInteger();

    private final QmpServer server;
    private final String name = "QMP client #" + NUMBERS.incrementAndGet();
    private volatile Channel channel;
    private volatile boolean commandMode; // written under the server's output lock
    private int queued; // event loop only

    QmpConnection(QmpServer server) {
        this.server = server;
    }

    @Override
    public void channelActive(ChannelHandlerContext ctx) {
        channel = ctx.channel();
        server.attach(this); // first, so a client holding the greeting is known to the server
        ctx.writeAndFlush(Unpooled.wrappedBuffer(server.greeting()));
        ctx.fireChannelActive();
    }

    @Override
    protected void channelRead0(ChannelHandlerContext ctx, Object frame) {
        Object request = frame instanceof ByteBuf json ? parse(json) : frame;
        server.dispatcher().submit(this, request);
        if (++queued >= MAX_QUEUED_REQUESTS) {
            ctx.channel().config().setAutoRead(false);
        }
    }

    @Override
    public void channelInactive(ChannelHandlerContext ctx) {
        server.detach(this);
        ctx.fireChannelInactive();
    }

    @Override
    public void exceptionCaught(ChannelHandlerContext ctx, Throwable cause) {
        LOG.debug("{}: closing after I/O error: {}", name, cause.toString());
        ctx.close();
    }

    /** Dispatcher thread: the request has been answered (or dropped); let more in. */
    void requestDone() {
        Channel ch = channel;
        try {
            ch.eventLoop().execute(() -> {
                if (--queued < MAX_QUEUED_REQUESTS && ch.isActive()) {
                    ch.config().setAutoRead(true);
                }
            });
        } catch (RejectedExecutionException e) {
            // the event loop has shut down with the server; nothing left to resume
        }
    }

    /** Any thread: queues {@code message} (one encoded QMP message) for the client. */
    void send(byte[] message) {
        channel.writeAndFlush(Unpooled.wrappedBuffer(message));
    }

    /**
     * Any thread, under the server's output lock: queues an event. A client that lets megabytes of
     * output pile up has stopped reading; it is disconnected rather than allowed to exhaust memory.
     */
    void sendEvent(byte[] message) {
        Channel ch = channel;
        if (!ch.isActive()) {
            return; // closing; detach() follows on the event loop
        }
        if (!ch.isWritable()) {
            LOG.warn("{}: has stopped reading (over {} bytes of QMP output waiting); disconnecting it",
                    name, ch.config().getWriteBufferHighWaterMark());
            ch.close();
            return;
        }
        send(message);
    }

    /**
     * Dispatcher thread: {@code qmp_capabilities} succeeded. Switching mode and queuing its reply
     * happen under the output lock, so no event can reach the client before that reply.
     */
    void enterCommandMode(byte[] reply) {
        synchronized (server.outputLock()) {
            commandMode = true;
            send(reply);
        }
    }

    boolean inCommandMode() {
        return commandMode;
    }

    boolean isOpen() {
        return channel.isActive();
    }

    /** Any thread: closes after what is already queued for the client. */
    ChannelFuture close() {
        return channel.close();
    }

    @Override
    public String toString() {
        return name;
    }

    private static Object parse(ByteBuf frame) {
        try (InputStream in = new ByteBufInputStream(frame)) {
            return QmpWire.JSON.readTree(in);
        } catch (StreamConstraintsException e) {
            // a number, string or nesting past the parser's limits: QEMU's words, not the library's
            return new QmpJsonFramer.InputError(e.getMessage() != null && e.getMessage().contains("nesting")
                    ? "JSON nesting depth limit exceeded" : "JSON token size limit exceeded");
        } catch (JsonProcessingException e) {
            return new QmpJsonFramer.InputError("JSON parse error, " + QmpWire.parseProblem(e));
        } catch (IOException e) {
            return new QmpJsonFramer.InputError("JSON parse error, " + e.getMessage());
        }
    }
}
